//! Password policy and argon2id hashing.
//!
//! Hashing is deliberately slow; callers run it on the blocking pool.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use rand::RngCore;

use crate::error::GatewayError;

/// Why a password is refused, or `None` when it meets the policy:
/// 8 to 1024 characters with an upper-case letter, a lower-case letter and a
/// digit, each from ASCII (`A-Z`, `a-z`, `0-9`, as the OpenAPI pattern says;
/// other characters are welcome but do not count).
pub fn policy_violation(password: &str) -> Option<&'static str> {
    if password.chars().count() < 8 {
        Some("password must be at least 8 characters long")
    } else if !password.chars().any(|c| c.is_ascii_uppercase()) {
        Some("password must contain an upper-case letter (A-Z)")
    } else if !password.chars().any(|c| c.is_ascii_lowercase()) {
        Some("password must contain a lower-case letter (a-z)")
    } else if !password.chars().any(|c| c.is_ascii_digit()) {
        Some("password must contain a digit (0-9)")
    } else if password.chars().count() > 1024 {
        Some("password must be at most 1024 characters long")
    } else {
        None
    }
}

/// argon2id with configured cost.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// The hash of a random password at this cost, checked when a user does not
    /// exist so that the answer takes as long as for a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// A hasher with `memory_kib` KiB and `iterations` passes (one lane).
    pub fn new(memory_kib: u32, iterations: u32) -> Result<Self, GatewayError> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| GatewayError::Config(format!("argon2 parameters: {e}")))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut unguessable = [0_u8; 32];
        rand::rng().fill_bytes(&mut unguessable);
        let dummy_hash = hash_with(&argon2, &base64::engine::general_purpose::STANDARD.encode(unguessable)).into();
        Ok(Self { argon2, dummy_hash })
    }

    /// The PHC string of `password` with a fresh random salt.
    pub fn hash(&self, password: &str) -> String {
        hash_with(&self.argon2, password)
    }

    /// Whether `password` matches the PHC string `hash` (false for a malformed hash).
    pub fn verify(&self, password: &str, hash: &str) -> bool {
        PasswordHash::new(hash).is_ok_and(|parsed| self.argon2.verify_password(password.as_bytes(), &parsed).is_ok())
    }

    /// Whether `password` matches `hash`, the stored hash of the user signing in.
    /// With no hash (no such user) it verifies against a dummy hash and answers
    /// false, so that a sign-in takes the argon2 time whether or not the user
    /// exists, and its duration does not tell which user names do.
    pub fn verify_user(&self, password: &str, hash: Option<&str>) -> bool {
        match hash {
            Some(hash) => self.verify(password, hash),
            None => {
                std::hint::black_box(self.verify(password, &self.dummy_hash));
                false
            }
        }
    }
}

/// The PHC string of `password` hashed by `argon2` with a fresh random salt.
fn hash_with(argon2: &Argon2<'_>, password: &str) -> String {
    let mut salt = [0_u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    argon2
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password within the policy")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_needs_length_upper_lower_and_digit() {
        assert!(policy_violation("Short1").unwrap().contains("8 characters"));
        assert!(policy_violation("alllower1").unwrap().contains("upper-case"));
        assert!(policy_violation("ALLUPPER1").unwrap().contains("lower-case"));
        assert!(policy_violation("NoDigitsHere").unwrap().contains("digit"));
        assert_eq!(policy_violation("Correct1horse"), None);
        // As the OpenAPI pattern reads them: A-Z, a-z and 0-9 count, other letters do not.
        assert!(policy_violation("ÄÖÜäöü12").unwrap().contains("upper-case"));
        assert_eq!(policy_violation("Äpfel-Birnen7"), None);
        assert!(policy_violation(&"Aa1".repeat(342)).unwrap().contains("1024"));
    }

    #[test]
    fn hashes_verify_and_salts_differ() {
        let hasher = PasswordHasher::new(256, 1).unwrap();
        let a = hasher.hash("Correct1horse");
        let b = hasher.hash("Correct1horse");
        assert_ne!(a, b, "salts are random");
        assert!(a.starts_with("$argon2id$"));
        assert!(hasher.verify("Correct1horse", &a));
        assert!(!hasher.verify("Correct1horsf", &a));
        assert!(!hasher.verify("Correct1horse", "not a hash"));
        assert!(hasher.verify_user("Correct1horse", Some(&a)));
        assert!(!hasher.verify_user("Correct1horse", None), "no user, no match");
    }
}
