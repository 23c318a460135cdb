//! Locking that survives a panic elsewhere: the data behind these mutexes
//! stays consistent between statements, so a poisoned lock is still used
//! rather than turned into a second failure.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, poisoned or not.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
