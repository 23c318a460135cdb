//! Who a web chat visitor is. A visitor id is a random 128-bit secret the
//! widget keeps in the page's first-party storage; the conversation is
//! named by a digest of it (`v.{hex}`), so the id itself, which is what
//! lets a browser read the conversation, appears in no listing or log. A
//! site that signs its users in passes `user_id` with `user_hash` =
//! HMAC-SHA256(identity_secret, user_id) in hex: the conversation is then
//! the user's (`u.{user_id}`), on every device.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Why a visitor's identity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the visitor id is not 32 hexadecimal digits")]
    BadVisitor,
    #[error("user_hash does not match user_id (or this integration has no identity_secret)")]
    BadUserHash,
    #[error("user_id must be 1 to 200 characters")]
    BadUserId,
}

/// A new visitor id.
pub fn new_visitor() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether `id` is a visitor id as the widget keeps it.
pub fn valid_visitor(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The customer id of visitor `visitor` of `integration`.
pub fn visitor_customer(integration: &str, visitor: &str) -> Result<String, IdentityError> {
    if !valid_visitor(visitor) {
        return Err(IdentityError::BadVisitor);
    }
    let mut h = Sha256::new();
    h.update(integration.as_bytes());
    h.update([0]);
    h.update(visitor.to_ascii_lowercase().as_bytes());
    Ok(format!("v.{}", hex::encode(&h.finalize()[..12])))
}

/// The customer id of a signed-in user, once `user_hash` checks out.
pub fn user_customer(
    secret: &str,
    user_id: &str,
    user_hash: &str,
) -> Result<String, IdentityError> {
    if user_id.is_empty() || user_id.chars().count() > 200 || user_id.chars().any(char::is_control)
    {
        return Err(IdentityError::BadUserId);
    }
    if secret.is_empty() {
        return Err(IdentityError::BadUserHash);
    }
    let Ok(given) = hex::decode(user_hash.trim()) else {
        return Err(IdentityError::BadUserHash);
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return Err(IdentityError::BadUserHash);
    };
    mac.update(user_id.as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| IdentityError::BadUserHash)?;
    Ok(format!("u.{user_id}"))
}

/// `user_hash` for `user_id` (what the site's server computes).
pub fn user_hash(secret: &str, user_id: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitors_are_named_by_a_digest_and_users_by_a_checked_hash() {
        let v = new_visitor();
        assert!(valid_visitor(&v));
        let c = visitor_customer("acme-web", &v).unwrap();
        assert!(c.starts_with("v.") && !c.contains(&v));
        assert_eq!(c, visitor_customer("acme-web", &v.to_uppercase()).unwrap());
        assert_ne!(c, visitor_customer("other-web", &v).unwrap());
        assert_eq!(visitor_customer("a", "xyz"), Err(IdentityError::BadVisitor));
        let hash = user_hash("s3cret", "user-42");
        assert_eq!(
            user_customer("s3cret", "user-42", &hash).unwrap(),
            "u.user-42"
        );
        assert_eq!(
            user_customer("s3cret", "user-43", &hash),
            Err(IdentityError::BadUserHash)
        );
        assert_eq!(
            user_customer("", "user-42", &hash),
            Err(IdentityError::BadUserHash)
        );
        assert_eq!(
            user_customer("s3cret", "user-42", "zz"),
            Err(IdentityError::BadUserHash)
        );
    }
}
