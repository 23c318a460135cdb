//! Whether each integration's access token still works: `ok`, `expiring`
//! (the platform's `debug_token` says it ends soon) or `expired` (the
//! platform refused it with code 190; the subcode says why). Decided by
//! code and subcode only, never by the message's text. Shown by the admin
//! API and `switchboard_integration_token_status{integration,status}`.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::Serialize;

use crate::clock::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Ok,
    Expiring,
    Expired,
}

impl TokenStatus {
    pub const ALL: [TokenStatus; 3] = [Self::Ok, Self::Expiring, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenState {
    pub status: TokenStatus,
    /// Why it is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it took this status (ms since the epoch).
    pub since_ms: u64,
    /// When the platform says the token (or its data access) ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

impl TokenState {
    fn ok() -> Self {
        Self {
            status: TokenStatus::Ok,
            reason: None,
            since_ms: now_ms(),
            expires_at_ms: None,
        }
    }
}

/// Why Meta refused a token, by the subcode of its error 190.
pub fn reason_of_190(subcode: Option<i64>) -> &'static str {
    match subcode {
        Some(458) => "the app is no longer authorized by the user (subcode 458)",
        Some(459) => "the user must log in to Facebook to clear a checkpoint (subcode 459)",
        Some(460) => "the user changed their password (subcode 460)",
        Some(463) => "the token expired (subcode 463)",
        Some(464) => "the user is not confirmed (subcode 464)",
        Some(467) => "the token is invalid: logged out or revoked (subcode 467)",
        Some(492) => "the user is no longer an admin of the Page (subcode 492)",
        _ => "the token is invalid or expired (code 190)",
    }
}

/// Each integration's token status, in memory on this instance.
#[derive(Default)]
pub struct TokenHealth {
    states: RwLock<HashMap<String, TokenState>>,
}

impl TokenHealth {
    fn update<T>(&self, f: impl FnOnce(&mut HashMap<String, TokenState>) -> T) -> T {
        match self.states.write() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn set(&self, id: &str, state: TokenState) -> bool {
        let status = state.status;
        let changed = self.update(|s| {
            let before = s.get(id).map(|x| x.status);
            s.insert(id.to_string(), state);
            before != Some(status)
        });
        crate::telemetry::token_status(id, status);
        changed
    }

    /// Registers an integration (ok until told otherwise).
    pub fn known(&self, id: &str) {
        let new = self.update(|s| {
            if s.contains_key(id) {
                false
            } else {
                s.insert(id.to_string(), TokenState::ok());
                true
            }
        });
        if new {
            crate::telemetry::token_status(id, TokenStatus::Ok);
        }
    }

    /// Forgets a deleted or disabled integration: its status is no longer
    /// exported as anything (so its token alerts clear).
    pub fn forget(&self, id: &str) {
        if self.update(|s| s.remove(id)).is_some() {
            crate::telemetry::token_status_gone(id);
        }
    }

    pub fn state(&self, id: &str) -> TokenState {
        let found = match self.states.read() {
            Ok(s) => s.get(id).cloned(),
            Err(poisoned) => poisoned.into_inner().get(id).cloned(),
        };
        found.unwrap_or_else(TokenState::ok)
    }

    pub fn status(&self, id: &str) -> TokenStatus {
        self.state(id).status
    }

    /// The platform refused the token with code 190 and `subcode`; `true`
    /// when this newly marks it expired.
    pub fn refused(&self, id: &str, subcode: Option<i64>) -> bool {
        self.expired(id, reason_of_190(subcode).to_string())
    }

    /// The token (or a Gmail refresh token) was refused for `reason`;
    /// `true` when this newly marks it expired.
    pub fn expired(&self, id: &str, reason: String) -> bool {
        if self.status(id) == TokenStatus::Expired {
            return false;
        }
        self.set(
            id,
            TokenState {
                status: TokenStatus::Expired,
                reason: Some(reason),
                since_ms: now_ms(),
                expires_at_ms: None,
            },
        )
    }

    /// A call with the token succeeded: an `expired` mark is lifted (an
    /// `expiring` one stays until a check says otherwise).
    pub fn accepted(&self, id: &str) {
        if self.status(id) == TokenStatus::Expired {
            tracing::info!(integration = id, "Access token accepted again");
            self.set(id, TokenState::ok());
        }
    }

    /// The token (or its data access) ends at `at_ms`; `true` when this
    /// newly marks it expiring.
    pub fn expiring(&self, id: &str, at_ms: u64, reason: String) -> bool {
        if self.status(id) == TokenStatus::Expired {
            return false;
        }
        self.set(
            id,
            TokenState {
                status: TokenStatus::Expiring,
                reason: Some(reason),
                since_ms: now_ms(),
                expires_at_ms: Some(at_ms),
            },
        )
    }

    /// A check found nothing wrong, or a new token was connected.
    pub fn reset(&self, id: &str) {
        if self.status(id) != TokenStatus::Ok {
            self.set(id, TokenState::ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_190_subcode_has_its_own_reason_and_the_mark_lifts_on_success() {
        let reasons: std::collections::HashSet<_> = [458, 459, 460, 463, 464, 467]
            .into_iter()
            .map(|c| reason_of_190(Some(c)))
            .collect();
        assert_eq!(reasons.len(), 6);
        let h = TokenHealth::default();
        h.known("a");
        assert!(h.refused("a", Some(463)));
        assert!(!h.refused("a", Some(463)), "already expired");
        let s = h.state("a");
        assert_eq!(s.status, TokenStatus::Expired);
        assert!(s.reason.unwrap().contains("expired (subcode 463)"));
        h.accepted("a");
        assert_eq!(h.status("a"), TokenStatus::Ok);
        assert!(h.expiring("a", 1, "ends".into()));
        h.accepted("a");
        assert_eq!(
            h.status("a"),
            TokenStatus::Expiring,
            "a success does not lift a warning"
        );
    }
}
